//! What the commands that read or change a runner's state share: where the flows are, which
//! state store, how to print.

use anyhow::Context as _;
use rivulet_runtime::lease::{self, HeldLease, LeaseError};
use rivulet_runtime::runner;
use rivulet_runtime::state::{self, Holder, StateStore};
use rivulet_spec::validate::Validation;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Output formats of the state commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Human,
    /// One JSON document (stable, versioned).
    Json,
}

/// The flows and the state they run against.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Flow files or directories (the state defaults to `.rivulet/state.db` beside them).
    #[arg(default_value = "flows")]
    pub paths: Vec<PathBuf>,
    /// The state store: a SQLite file or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
    pub state: Option<String>,
}

impl StateArgs {
    /// Where the state is.
    pub fn location(&self) -> String {
        match &self.state {
            Some(s) => s.clone(),
            None => default_state(&self.paths).display().to_string(),
        }
    }

    /// Opens the state (which must exist: reading a state that is not there is a mistake).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn StateStore>> {
        let location = self.location();
        let is_file = !location.contains("://");
        if is_file && !Path::new(&location).exists() {
            anyhow::bail!(
                "no state at {location}: nothing has run against these flows yet (or pass --state)"
            );
        }
        state::open(&location, rivulet_http::clock::system())
            .await
            .with_context(|| format!("opening state {}", state::display_location(&location)))
    }
}

/// Splits a command's targets into record ids (numbers) and flow paths (anything else; `flows`
/// when none is given).
pub fn ids_and_paths(targets: &[String]) -> (Vec<i64>, Vec<PathBuf>) {
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    for t in targets {
        match t.parse::<i64>() {
            Ok(id) => ids.push(id),
            Err(_) => paths.push(PathBuf::from(t)),
        }
    }
    if paths.is_empty() {
        paths.push(PathBuf::from("flows"));
    }
    (ids, paths)
}

/// The default state file: `.rivulet/state.db` in the folder that holds the flows folder.
pub fn default_state(paths: &[PathBuf]) -> PathBuf {
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

/// The lease a command that changes what a runner would do with `flow` (replay, cursor reset)
/// takes: the whole state's, or with a shared state the lease on the flow's work.
pub fn lease_of(store: &Arc<dyn StateStore>, validation: &Validation, flow: &str) -> String {
    if !store.shared() {
        return lease::STATE_LEASE.to_string();
    }
    validation
        .flows
        .iter()
        .find(|f| f.flow.name == flow)
        .map(|f| runner::work_lease(&runner::task_label(f)))
        .unwrap_or_else(|| runner::work_lease(&format!("schedule of {flow}")))
}

/// Takes lease `name` for a command that changes what a runner would do (replay, cursor
/// reset): refused while a runner holds it (`Err(exit code)`), unless `wait`.
pub async fn hold(
    store: &Arc<dyn StateStore>,
    location: &str,
    name: &str,
    wait: bool,
) -> anyhow::Result<Result<HeldLease, ExitCode>> {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let holder = Holder::this_process(chrono::Utc::now());
    match HeldLease::acquire(
        Arc::clone(store),
        name,
        &holder,
        lease::DEFAULT_TTL,
        wait,
        stop,
        |held| {
            eprintln!(
                "rivulet: waiting for the runner {} to stop (--wait)",
                held.holder
            )
        },
    )
    .await
    {
        Ok(held) => Ok(Ok(held)),
        Err(LeaseError::Held(held)) => {
            eprintln!(
                "rivulet: a runner holds the state {}: {}; stop it first (its work would race this change), or pass --wait",
                state::display_location(location),
                held.holder
            );
            Ok(Err(ExitCode::from(crate::exit::STATE_IN_USE)))
        }
        Err(LeaseError::Stopped) => Ok(Err(ExitCode::from(crate::exit::INTERRUPTED))),
        Err(LeaseError::State(e)) => Err(e).context("taking the lease on the state"),
    }
}

/// The flows at `paths`, validated; when they are invalid, their diagnostics printed (and,
/// with `doing`, `rivulet: not {doing}: the flows are invalid` said) and the exit code to end
/// with instead.
pub fn valid_flows(
    paths: &[PathBuf],
    doing: Option<&str>,
) -> anyhow::Result<Result<Validation, ExitCode>> {
    let validation =
        rivulet_spec::validate::validate_paths(paths, &rivulet_spec::validate::Options::default())?;
    if validation.is_valid(false) {
        return Ok(Ok(validation));
    }
    let mut out = std::io::stdout().lock();
    crate::render::validation(&mut out, &validation, crate::render::Format::Human, false)?;
    if let Some(doing) = doing {
        eprintln!("rivulet: not {doing}: the flows are invalid");
    }
    Ok(Err(ExitCode::from(crate::exit::FAILED)))
}

/// A small runtime for a short command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A run's duration from its RFC 3339 start and end, for people (`1.2s`, `3m 4s`).
pub fn duration(started: &str, finished: Option<&str>) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(started), finished.and_then(parse)) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds().max(0) as u64;
            if ms < 60_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                let secs = ms / 1000;
                format!("{}m {}s", secs / 60, secs % 60)
            }
        }
        _ => "-".into(),
    }
}

/// JSON on one line, cut to `max` characters for a table.
pub fn compact(value: &serde_json::Value, max: usize) -> String {
    let text = rivulet_http::secrets::scrub_owned(value.to_string());
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
