//! `run --watch`: changes to the flow files are validated as they settle, and a valid set is
//! handed to the running runner; an invalid one is refused with its diagnostics logged, and the
//! flows that run go on unchanged.

use crate::render::{self, Format};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rivulet_runtime::events::ReloadRefused;
use rivulet_runtime::metrics::Metrics;
use rivulet_spec::diagnostic::Severity;
use rivulet_spec::validate::{Options, Validation, validate_paths};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long changes must settle before they are read: an editor's save is often several
/// writes (a temporary file, a rename), and a half-written flow is not a change to refuse.
const SETTLE: Duration = Duration::from_millis(250);

/// Watches `paths` until the returned watcher is dropped, sending each valid change to
/// `reloads`. `applied` is the validation the runner started with.
pub fn start(
    paths: &[PathBuf],
    applied: &Validation,
    metrics: Arc<Metrics>,
    reloads: mpsc::Sender<Validation>,
) -> anyhow::Result<RecommendedWatcher> {
    let (tx, rx) = channel::<notify::Result<Event>>();
    let mut watcher = notify::recommended_watcher(tx)?;
    for path in paths {
        if path.is_dir() {
            watcher.watch(path, RecursiveMode::Recursive)?;
        } else {
            // Editors save by writing a new file and renaming it over the old one: watching
            // the file itself would lose it at the first save.
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            watcher.watch(parent, RecursiveMode::NonRecursive)?;
        }
    }
    let roots = paths.to_vec();
    let mut last = digest(applied);
    let mut refused = String::new();
    std::thread::Builder::new()
        .name("rivulet-watch".into())
        .spawn(move || {
            // Ends when the watcher (and so the sender) is dropped.
            while let Ok(first) = rx.recv() {
                let mut changed = is_change(&first);
                // Wait for the burst to settle, noting whether any of it was a change.
                loop {
                    match rx.recv_timeout(SETTLE) {
                        Ok(event) => changed |= is_change(&event),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                if !changed {
                    continue;
                }
                let validation = match validate_paths(&roots, &Options::default()) {
                    Ok(v) => v,
                    Err(e) => {
                        ReloadRefused {
                            error: &e.to_string(),
                        }
                        .emit(&metrics);
                        continue;
                    }
                };
                if !validation.is_valid(false) {
                    let text = errors_only(&validation);
                    // Said once per distinct mistake, not at every touch of the files.
                    if text != refused {
                        ReloadRefused {
                            error: &format!("\n{text}"),
                        }
                        .emit(&metrics);
                        refused = text;
                    }
                    continue;
                }
                refused.clear();
                let now = digest(&validation);
                if now == last {
                    tracing::debug!("the flow files changed on disk but not in meaning");
                    continue;
                }
                last = now;
                if reloads.blocking_send(validation).is_err() {
                    return;
                }
            }
        })?;
    Ok(watcher)
}

/// Whether an event can have changed what the flows say: a file written, created, removed or
/// renamed (not merely opened or read, as validating them does), outside editors' scratch
/// files and the state directory.
fn is_change(event: &notify::Result<Event>) -> bool {
    match event {
        Ok(e) => {
            let change = match e.kind {
                // Reading a file can touch its access time: not a change.
                EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => false,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
                EventKind::Any | EventKind::Other => true,
                EventKind::Access(_) => false,
            };
            change && e.paths.iter().any(|p| relevant(p))
        }
        Err(e) => {
            tracing::warn!(error = %e, "watching the flow files");
            false
        }
    }
}

/// The validation's errors, as `validate` prints them (its warnings are not why a change is
/// refused).
fn errors_only(v: &Validation) -> String {
    let mut errors = v.clone();
    errors.diagnostics.retain(|d| d.severity == Severity::Error);
    let mut text = Vec::new();
    let _ = render::validation(&mut text, &errors, Format::Human, false);
    String::from_utf8_lossy(&text).trim_end().to_string()
}

/// Whether a changed path can change the flows: YAML, JSON and secret files do; editors'
/// swap and backup files and the state directory do not.
fn relevant(path: &Path) -> bool {
    if path.components().any(|c| c.as_os_str() == ".rivulet") {
        return false;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !(name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.starts_with(".#")
        || name.ends_with(".db")
        || name.ends_with(".db-wal")
        || name.ends_with(".db-shm")
        || name.ends_with(".db-journal"))
}

/// What the flows mean, to tell a change of meaning from a touch.
fn digest(v: &Validation) -> String {
    let mut out = String::new();
    for f in &v.flows {
        out.push_str(&f.file.display().to_string());
        out.push_str(&serde_json::to_string(&f.flow).unwrap_or_default());
        out.push('\n');
    }
    for (name, c) in &v.connections {
        out.push_str(name);
        out.push_str(&c.file.display().to_string());
        out.push_str(&serde_json::to_string(&c.connection).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::relevant;
    use std::path::Path;

    #[test]
    fn editor_files_and_state_are_not_changes() {
        assert!(relevant(Path::new("flows/orders.yaml")));
        assert!(relevant(Path::new("flows/secrets/token")));
        assert!(!relevant(Path::new("flows/.orders.yaml.swp")));
        assert!(!relevant(Path::new("flows/orders.yaml~")));
        assert!(!relevant(Path::new("x/.rivulet/state.db-wal")));
    }
}
