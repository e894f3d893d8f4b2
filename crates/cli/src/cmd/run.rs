//! `rivulet run`: every flow in a directory, as a long-lived service (or once).

use crate::render::{self, Format};
use anyhow::Context as _;
use rivulet_runtime::runner::{self, RunOptions};
use rivulet_runtime::state;
use rivulet_spec::validate::{Options, validate_paths};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
pub struct Args {
    /// Flow files or directories.
    #[arg(default_value = "flows")]
    paths: Vec<PathBuf>,
    /// The state store: a SQLite file (default: `.rivulet/state.db` beside the flows
    /// directory; with `--sandbox`, a fresh temporary one).
    #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
    state: Option<String>,
    /// Run every flow once (one poll, one schedule tick), print a summary and exit: 0 when
    /// every record went through, 1 when some failed.
    #[arg(long)]
    once: bool,
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
    /// After SIGINT/SIGTERM, how long in-flight work may take to finish and be recorded.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    grace: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    rivulet_spec::model::Duration::parse(s).map(|d| d.get())
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RIVULET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

/// The default state file: `.rivulet/state.db` in the folder that holds the flows folder.
fn default_state(paths: &[PathBuf]) -> PathBuf {
    let first = paths
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("flows"));
    let dir = if first.is_dir() {
        first
    } else {
        first.parent().unwrap_or(Path::new("."))
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.parent()
        .unwrap_or(&dir)
        .join(".rivulet")
        .join("state.db")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let validation = validate_paths(&args.paths, &Options::default())?;
    if !validation.is_valid(false) {
        let mut stdout = std::io::stdout().lock();
        render::validation(&mut stdout, &validation, Format::Human, false)?;
        eprintln!("rivulet: not starting: the flows are invalid");
        return Ok(ExitCode::from(1));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut options = RunOptions { once: args.once, dry_run: args.dry_run, flows: args.flows.clone(), ..RunOptions::default() };
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
            (None, None) => default_state(&args.paths).display().to_string(),
        };
        if args.sandbox {
            let sandbox = rivulet_sandbox::Sandbox::start(rivulet_sandbox::SandboxConfig { demo_data: true, ..Default::default() })
                .await
                .context("starting the sandbox")?;
            tracing::info!(url = %sandbox.url(), "HubSpot sandbox started with demo companies and contacts");
            options.overrides.hubspot = Some((sandbox.url(), "sandbox".into()));
            let (addr, received) = crate::demo::start().await.context("starting the demo HTTP API")?;
            options.overrides.http = Some(format!("http://{addr}"));
            demo = Some(received);
            sandbox_handle = Some(sandbox);
        }
        let store = state::open(&state_location, options.clock.clone()).await.with_context(|| format!("opening state {state_location}"))?;
        let signals = StopSignals::listen().context("listening for stop signals")?;
        tracing::info!(state = %state_location, flows = validation.flows.len(), once = args.once, dry_run = args.dry_run, "running; SIGINT or SIGTERM stops after the work in hand");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signals.recv().await;
            tracing::info!("stopping: finishing the work in hand");
            let _ = stop_tx.send(true);
        });
        let mut stop_for_grace = stop_rx.clone();
        let grace = args.grace;
        let run = runner::run(&validation, store, options, stop_rx);
        tokio::pin!(run);
        let summary = tokio::select! {
            result = &mut run => result?,
            _ = async {
                while !*stop_for_grace.borrow() {
                    if stop_for_grace.changed().await.is_err() { std::future::pending::<()>().await; }
                }
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace = ?grace, "in-flight work did not finish within the grace period; its records will be read again on restart");
                return Ok(ExitCode::SUCCESS);
            }
        };
        print_summary(&summary, demo.as_ref());
        if let Some(sandbox) = sandbox_handle.take() {
            sandbox.shutdown().await;
        }
        Ok(if args.once && summary.has_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
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

fn print_summary(summary: &runner::Summary, demo: Option<&crate::demo::Received>) {
    println!(
        "{:<28} {:>5} {:>8} {:>10} {:>7} {:>8}",
        "flow", "runs", "read", "succeeded", "failed", "skipped"
    );
    for (name, f) in &summary.flows {
        println!(
            "{:<28} {:>5} {:>8} {:>10} {:>7} {:>8}",
            name, f.runs, f.counts.read, f.counts.succeeded, f.counts.failed, f.counts.skipped
        );
        for e in &f.errors {
            println!("  error: {e}");
        }
    }
    println!("search calls: {}", summary.search_calls);
    if let Some(d) = demo {
        for connection in ["erp_webhook", "shop"] {
            let n = d.count(connection);
            if n > 0 {
                println!("demo API `{connection}` received {n} records");
            }
        }
    }
}
