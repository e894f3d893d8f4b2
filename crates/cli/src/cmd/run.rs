//! `rivulet run`: every flow in a directory, as a long-lived service (or once).

use crate::exit;
use anyhow::Context as _;
use rivulet_runtime::lease::{self, HeldLease, LeaseError};
use rivulet_runtime::runner::{self, RunOptions};
use rivulet_runtime::state::{self, Holder};
use rivulet_spec::model::Connection;
use rivulet_spec::validate::Validation;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the endpoints listen unless `--listen` says: loopback only.
const DEFAULT_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9464,
));

/// Formats of the `--once` summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// A table.
    Human,
    /// One JSON document (stable, versioned).
    Json,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Arguments of `rivulet run`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet run flows --sandbox --once          # try the flows, no account needed\n  rivulet run flows --once --format json     # one pass, a summary for tools\n  rivulet run flows --watch                  # a service; reload on change\n  rivulet run flows --dry-run --once --flow orders\n\nExit codes: 0 done (service: stopped cleanly), 1 records failed or the flows are invalid, 2 usage or I/O error, 3 gave up waiting for a destination (--once-wait), 4 stopped with work in hand (grace ran out), 5 another runner holds the state."
)]
pub struct Args {
    /// Flow files or directories.
    #[arg(default_value = "flows")]
    paths: Vec<PathBuf>,
    /// The state store: a SQLite file (default: `.rivulet/state.db` beside the flows
    /// directory; with `--sandbox`, a fresh temporary one).
    #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
    state: Option<String>,
    /// Run every flow once (one poll, one schedule tick), print a summary and exit: 0 when
    /// every record went through, 1 when some failed, 3 when a destination stayed down longer
    /// than `--once-wait`.
    #[arg(long)]
    once: bool,
    /// With `--once`: how long to keep trying a destination (or source) that is down before
    /// giving up (exit 3) with nothing moved past it.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    once_wait: Duration,
    /// When another runner holds the state: wait for it to stop (or crash) and take over,
    /// instead of refusing to start (exit 5).
    #[arg(long)]
    wait: bool,
    /// Watch the flow files: a change is validated and applied without a restart (an invalid
    /// one is refused, its diagnostics logged, the running flows kept); an unchanged flow keeps
    /// running, a removed one stops after its page in hand.
    #[arg(long, conflicts_with = "once")]
    watch: bool,
    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` here while running (port 0: any
    /// free port, logged). Loopback by default (127.0.0.1:9464, not under `--once`); another
    /// address only when given.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_listen")]
    listen: Option<std::net::SocketAddr>,
    /// Serve no endpoints (with `--once` none are served unless `--listen` is given).
    #[arg(long)]
    no_listen: bool,
    /// With `--once`: the summary's format (`json` for tools).
    #[arg(long, value_enum, default_value = "human")]
    format: SummaryFormat,
    /// Read and map, print what would be sent, write nothing and move no cursor.
    #[arg(long)]
    dry_run: bool,
    /// Run only this flow (repeatable).
    #[arg(long = "flow", value_name = "NAME")]
    flows: Vec<String>,
    /// Start the built-in HubSpot sandbox (seeded with demo companies and contacts) and a demo
    /// HTTP API, and point every connection at them: try the flows with no account.
    #[arg(long)]
    sandbox: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// How long this runner's leases last without renewal: with a shared (PostgreSQL) state,
    /// the longest a crashed runner's work waits before another runner takes it over.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// After SIGINT/SIGTERM, how long in-flight work may take to finish and be recorded.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    grace: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    rivulet_spec::model::Duration::parse(s).map(|d| d.get())
}

/// One log event on its way to stderr: collected, then written with every registered secret
/// scrubbed (whatever field, error or echoed body it came in).
struct ScrubbedLine(Vec<u8>);

impl std::io::Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        use std::io::Write;
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr()
            .lock()
            .write_all(rivulet_http::secrets::scrub(&text).as_bytes());
    }
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RIVULET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedLine(Vec::new()))
        .with_target(false)
        .with_ansi(color);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let validation = match super::state::valid_flows(&args.paths, Some("starting"))? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let runtime = super::state::runtime()?;
    runtime.block_on(async move {
        let mut options = RunOptions {
            once: args.once,
            once_wait: args.once_wait,
            dry_run: args.dry_run,
            flows: args.flows.clone(),
            ..RunOptions::default()
        };
        let mut sandbox_handle = None;
        let mut demo = None;
        // A sandbox is fresh every time, so its state is too; the folder goes when we do.
        let scratch = if args.state.is_none() && args.sandbox {
            Some(tempfile::Builder::new().prefix("rivulet-sandbox-").tempdir().context("creating a scratch state folder")?)
        } else {
            None
        };
        let state_location = match (&args.state, &scratch) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) => dir.path().join("state.db").display().to_string(),
            (None, None) => super::state::default_state(&args.paths).display().to_string(),
        };
        if args.sandbox {
            let sandbox = rivulet_sandbox::Sandbox::start(rivulet_sandbox::SandboxConfig { demo_data: true, ..Default::default() })
                .await
                .context("starting the sandbox")?;
            options.overrides.hubspot = Some((sandbox.url(), "sandbox".into()));
            let (addr, received) = crate::demo::start().await.context("starting the demo HTTP API")?;
            options.overrides.http = Some(format!("http://{addr}"));
            demo = Some(received);
            for line in redirections(&validation, &options) {
                tracing::info!("{line}");
            }
            sandbox_handle = Some(sandbox);
        }
        let shown = state::display_location(&state_location);
        let store = state::open(&state_location, options.clock.clone()).await.with_context(|| format!("opening state {shown}"))?;
        let signals = StopSignals::listen().context("listening for stop signals")?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopper = stop_tx.clone();
        tokio::spawn(async move {
            signals.recv().await;
            tracing::info!("stopping: finishing the work in hand");
            let _ = stopper.send(true);
        });

        // A shared state (PostgreSQL): runners split the work by leases on each trigger group
        // and scheduled flow. Otherwise one runner per state. A dry run writes nothing, so it
        // needs no lease.
        let shared_state = store.shared() && !args.dry_run;
        if shared_state {
            options.sharing = Some(runner::Sharing {
                holder: Holder::this_process(options.clock.now()),
                ttl: args.lease_ttl,
            });
        }
        // One runner per state: a dry run writes nothing, so it needs no lease.
        let held = if args.dry_run || shared_state {
            None
        } else {
            let holder = Holder::this_process(options.clock.now());
            let acquired = HeldLease::acquire(
                store.clone(),
                lease::STATE_LEASE,
                &holder,
                args.lease_ttl,
                args.wait,
                stop_rx.clone(),
                |held| tracing::warn!(holder = %held.holder, "the state {shown} is in use by another runner; waiting for it to stop (--wait)"),
            )
            .await;
            match acquired {
                Ok(held) => Some(held),
                Err(LeaseError::Held(held)) => {
                    eprintln!(
                        "rivulet: the state {shown} is in use by another runner: {}; stop it first, or pass --wait to take over when it stops",
                        held.holder
                    );
                    return Ok(ExitCode::from(exit::STATE_IN_USE));
                }
                Err(LeaseError::Stopped) => return Ok(ExitCode::from(exit::INTERRUPTED)),
                Err(LeaseError::State(e)) => return Err(e).context("taking the lease on the state"),
            }
        };
        if let Some(held) = &held {
            options.fence = Some(held.fence());
            options.guard = Some(held.guard());
            // Runs left `running` by a runner that stopped or crashed before them.
            let swept = store
                .interrupt_runs(None, options.clock.now(), "the runner stopped before this run finished")
                .await
                .context("closing the runs a stopped runner left open")?;
            if swept > 0 {
                tracing::warn!(runs = swept, "marked runs a stopped runner left open as interrupted");
            }
        }
        let lost = held.as_ref().map(HeldLease::lost);
        if let Some(mut lost) = lost.clone() {
            let stopper = stop_tx.clone();
            tokio::spawn(async move {
                if lost.wait_for(|l| *l).await.is_ok() {
                    let _ = stopper.send(true);
                }
            });
        }

        // Endpoints: for a service by default; for `--once` only when asked.
        if !args.no_listen && (!args.once || args.listen.is_some()) {
            let metrics = options.metrics.clone();
            let listen = args.listen.unwrap_or(DEFAULT_LISTEN);
            let addr = crate::endpoints::serve(listen, metrics)
                .await
                .with_context(|| format!("cannot serve /metrics on {listen} (pass --listen ADDR, or --no-listen)"))?;
            tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /healthz and /readyz");
        }
        tracing::info!(state = %shown, flows = validation.flows.len(), once = args.once, dry_run = args.dry_run, "running; SIGINT or SIGTERM stops after the work in hand");
        let runs = options.runs.clone();
        let clock = options.clock.clone();
        let mut stop_for_grace = stop_rx.clone();
        let grace = args.grace;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let _watcher = if args.watch {
            let metrics = options.metrics.clone();
            let watcher = crate::watch::start(&args.paths, &validation, metrics, reload_tx)
                .context("watching the flow files (--watch)")?;
            tracing::info!("watching the flow files for changes (--watch)");
            Some(watcher)
        } else {
            drop(reload_tx);
            None
        };
        let reloads = args.watch.then_some(reload_rx);
        // `--once` on a terminal: a bar of the flows done; elsewhere the summary says it all.
        let progress = args.once.then(|| crate::progress::bar(validation.flows.len() as u64, "flows"));
        if let Some(bar) = progress.clone().filter(|b| !b.is_hidden()) {
            let metrics = options.metrics.clone();
            tokio::spawn(async move {
                loop {
                    let (done, total) = metrics.flows_done();
                    if total > 0 {
                        bar.set_length(total as u64);
                    }
                    bar.set_position(done as u64);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        let run = runner::run_watched(&validation, store.clone(), options.clone(), stop_rx, reloads);
        tokio::pin!(run);
        let summary = tokio::select! {
            result = &mut run => result,
            _ = async {
                while !*stop_for_grace.borrow() {
                    if stop_for_grace.changed().await.is_err() { std::future::pending::<()>().await; }
                }
                tokio::time::sleep(grace).await;
            } => {
                let n = runs.interrupt(store.as_ref(), clock.now(), "the grace period ran out before the run finished").await;
                tracing::error!(grace_s = grace.as_secs_f64(), runs = n, "in-flight work did not finish within the grace period: its runs are marked interrupted and their records will be read again on restart");
                if let Some(held) = held {
                    held.release().await;
                }
                return Ok(ExitCode::from(exit::INTERRUPTED));
            }
        };
        if let Some(held) = held {
            held.release().await;
        }
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        let summary = summary?;
        let redirected = redirections(&validation, &options);
        match args.format {
            SummaryFormat::Human => print_summary(&summary, demo.as_ref(), &redirected),
            SummaryFormat::Json => println!("{}", serde_json::to_string_pretty(&summary_json(&summary, &redirected))?),
        }
        if let Some(sandbox) = sandbox_handle.take() {
            sandbox.shutdown().await;
        }
        Ok(ExitCode::from(if lost.is_some_and(|l| *l.borrow()) {
            exit::STATE_IN_USE
        } else if !args.once {
            exit::OK
        } else if summary.gave_up_waiting() {
            exit::GAVE_UP_WAITING
        } else if summary.has_failures() {
            exit::FAILED
        } else {
            exit::OK
        }))
    })
}

/// Where `--sandbox` points each connection the selected flows use, instead of its own
/// settings: said at start and in the summary, so nobody mistakes a delivery to the demo API
/// for one to their own endpoint.
fn redirections(validation: &Validation, options: &RunOptions) -> Vec<String> {
    let mut used: Vec<&str> = validation
        .flows
        .iter()
        .filter(|f| options.flows.is_empty() || options.flows.contains(&f.flow.name))
        .flat_map(|f| f.flow.connections())
        .collect();
    used.sort_unstable();
    used.dedup();
    used.into_iter()
        .filter_map(|name| {
            let checked = validation.connections.get(name)?;
            Some(match &checked.connection {
                Connection::Hubspot(c) => format!(
                    "--sandbox: connection `{name}` (HubSpot, {}) points at the built-in HubSpot sandbox {}",
                    c.base_url,
                    options.overrides.hubspot.as_ref()?.0
                ),
                Connection::Http(c) => format!(
                    "--sandbox: connection `{name}` (HTTP, {}) points at the demo API {}/{name}: nothing reaches the real endpoint",
                    c.base_url,
                    options.overrides.http.as_ref()?
                ),
            })
        })
        .collect()
}

/// Stop signals, listened for from the moment this returns (so a signal sent after the
/// "running" log line is never lost).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn summary_json(summary: &runner::Summary, redirected: &[String]) -> serde_json::Value {
    let scrub = |t: &str| rivulet_http::secrets::scrub(t).into_owned();
    serde_json::json!({
        "version": crate::render::JSON_VERSION,
        "flows": summary.flows.iter().map(|(name, f)| serde_json::json!({
            "flow": name,
            "runs": f.runs,
            "read": f.counts.read,
            "delivered": f.counts.succeeded,
            "failed": f.counts.failed,
            "read_again": f.counts.skipped,
            "unchanged": f.counts.unchanged,
            "filtered": f.counts.filtered,
            "api_calls": f.counts.api_calls,
            "errors": f.errors.iter().map(|e| scrub(e)).collect::<Vec<_>>(),
            "gave_up_waiting": f.waiting.as_deref().map(scrub),
        })).collect::<Vec<_>>(),
        "search_calls": summary.search_calls,
        "sandbox": redirected,
    })
}

fn print_summary(
    summary: &runner::Summary,
    demo: Option<&crate::demo::Received>,
    redirected: &[String],
) {
    println!(
        "{:<28} {:>5} {:>8} {:>10} {:>9} {:>8} {:>7} {:>6}",
        "flow", "runs", "read", "delivered", "unchanged", "filtered", "failed", "again"
    );
    let scrub = |t: &str| rivulet_http::secrets::scrub(t).into_owned();
    for (name, f) in &summary.flows {
        println!(
            "{:<28} {:>5} {:>8} {:>10} {:>9} {:>8} {:>7} {:>6}",
            name,
            f.runs,
            f.counts.read,
            f.counts.succeeded,
            f.counts.unchanged,
            f.counts.filtered,
            f.counts.failed,
            f.counts.skipped
        );
        for e in &f.errors {
            println!("  error: {}", scrub(e));
        }
        if let Some(w) = &f.waiting {
            println!("  gave up waiting: {}", scrub(w));
        }
    }
    println!("search calls: {}", summary.search_calls);
    for line in redirected {
        println!("{line}");
    }
    if let Some(d) = demo {
        for (connection, n) in d.counts() {
            println!("demo API `{connection}` received {n} records (sandbox only)");
        }
    }
}
