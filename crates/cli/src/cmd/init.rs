//! `rivulet init [DIR]`: a flows folder to start from, valid and runnable at once.
//!
//! ```sh
//! rivulet init demo                       # connections.yaml, four default flows, their tests, sample CSVs
//! rivulet run demo --sandbox --once       # runs them on the built-in sandbox, no account needed
//! rivulet init flows --no-defaults        # only connections.yaml
//! ```
//!
//! The scaffold (the templates live in `crates/cli/src/init/`):
//!
//! | file | what |
//! |---|---|
//! | `connections.yaml` | one HubSpot connection: `token: ${HUBSPOT_TOKEN}`, `api_version: 2026-03`, throttle, concurrency and daily limit explained |
//! | `companies-from-csv.yaml` (+ `.test.yaml`) | an ERP's CSV export of companies, upserted into HubSpot by `external_id` |
//! | `contacts-from-csv.yaml` (+ `.test.yaml`) | a CSV of contacts, upserted into HubSpot by email |
//! | `hubspot-companies-to-file.yaml` (+ `.test.yaml`) | new and changed HubSpot companies, appended to `out/hubspot-companies.jsonl` |
//! | `hubspot-contacts-to-file.yaml` (+ `.test.yaml`) | new and changed HubSpot contacts, appended to `out/hubspot-contacts.jsonl` |
//! | `data/companies.csv`, `data/contacts.csv` | sample rows for the two imports |
//! | `.gitignore` | keeps `out/` out of version control |
//! | `.schemas/*.schema.json` | the JSON Schemas each file names on its first line, from this binary |
//!
//! With `--no-defaults`, only `connections.yaml`.
//!
//! It never overwrites: a file that exists is reported as kept and left as it is (so running it
//! again adds what is missing). Exit codes: 0 the scaffold is in place (every file written, or
//! kept because it existed); 2 usage or I/O error (DIR is a file, a file could not be written;
//! the files written before the error stay).

use anyhow::{Context as _, bail};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `rivulet init`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet init demo && rivulet run demo --sandbox --once   # try it, no account needed\n  rivulet init                                             # into flows/\n  rivulet init flows --no-defaults                         # only connections.yaml\n\nIt never overwrites a file: one that exists is reported as kept.\n\nExit codes: 0 the scaffold is in place (files written, or kept because they existed), 2 usage or I/O error."
)]
pub struct Args {
    /// The folder to scaffold (created if missing).
    #[arg(default_value = "flows")]
    dir: PathBuf,
    /// Write only `connections.yaml`: no default flows, tests or sample data.
    #[arg(long)]
    no_defaults: bool,
}

/// One file of the scaffold.
struct Template {
    /// Its path inside the folder.
    path: &'static str,
    /// Its text.
    text: &'static str,
    /// Part of the default mappings (left out by `--no-defaults`).
    default_mapping: bool,
}

const TEMPLATES: &[Template] = &[
    Template {
        path: "connections.yaml",
        text: include_str!("../init/connections.yaml"),
        default_mapping: false,
    },
    Template {
        path: "companies-from-csv.yaml",
        text: include_str!("../init/companies-from-csv.yaml"),
        default_mapping: true,
    },
    Template {
        path: "companies-from-csv.test.yaml",
        text: include_str!("../init/companies-from-csv.test.yaml"),
        default_mapping: true,
    },
    Template {
        path: "contacts-from-csv.yaml",
        text: include_str!("../init/contacts-from-csv.yaml"),
        default_mapping: true,
    },
    Template {
        path: "contacts-from-csv.test.yaml",
        text: include_str!("../init/contacts-from-csv.test.yaml"),
        default_mapping: true,
    },
    Template {
        path: "hubspot-companies-to-file.yaml",
        text: include_str!("../init/hubspot-companies-to-file.yaml"),
        default_mapping: true,
    },
    Template {
        path: "hubspot-companies-to-file.test.yaml",
        text: include_str!("../init/hubspot-companies-to-file.test.yaml"),
        default_mapping: true,
    },
    Template {
        path: "hubspot-contacts-to-file.yaml",
        text: include_str!("../init/hubspot-contacts-to-file.yaml"),
        default_mapping: true,
    },
    Template {
        path: "hubspot-contacts-to-file.test.yaml",
        text: include_str!("../init/hubspot-contacts-to-file.test.yaml"),
        default_mapping: true,
    },
    Template {
        path: "data/companies.csv",
        text: include_str!("../init/data/companies.csv"),
        default_mapping: true,
    },
    Template {
        path: "data/contacts.csv",
        text: include_str!("../init/data/contacts.csv"),
        default_mapping: true,
    },
    Template {
        path: ".gitignore",
        text: include_str!("../init/gitignore"),
        default_mapping: true,
    },
];

/// What became of one file.
enum Outcome {
    Written,
    Kept,
}

/// Creates `path` with `text` unless something (a file, a folder, a link) is there already.
fn write_new(path: &Path, text: &str) -> anyhow::Result<Outcome> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder {}", parent.display()))?;
    }
    // `create_new` refuses whatever exists at the path, a dangling link included, and never
    // follows one: nothing that is there is ever written through or replaced.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Outcome::Kept),
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Outcome::Written)
}

/// A path as the user would type it: `demo/connections.yaml`.
fn shown(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// The folder as an argument of the next commands (quoted when it needs to be).
fn arg(dir: &Path) -> String {
    let text = dir.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!(
            "{} exists and is not a folder: name a folder to scaffold (`rivulet init DIR`)",
            dir.display()
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the folder {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    }
    let mut out = std::io::stdout().lock();
    let chosen: Vec<&Template> = TEMPLATES
        .iter()
        .filter(|t| !(args.no_defaults && t.default_mapping))
        .collect();
    let (mut written, mut kept) = (0usize, Vec::new());
    for t in &chosen {
        // Each line as it happens: after an I/O error the user sees what was written before it.
        match write_new(&dir.join(t.path), t.text)? {
            Outcome::Written => {
                written += 1;
                writeln!(out, "  wrote  {}", shown(dir, t.path))?;
            }
            Outcome::Kept => {
                kept.push(t.path);
                writeln!(
                    out,
                    "  kept   {} (it exists; not overwritten)",
                    shown(dir, t.path)
                )?;
            }
        }
    }
    // The JSON Schemas the files name on their first line, as this binary knows them: editors
    // check the files offline, against exactly the version that will run them.
    let mut schemas = 0;
    for (name, value) in [
        ("flow.schema.json", rivulet_spec::schema::flow_schema()),
        (
            "connections.schema.json",
            rivulet_spec::schema::connections_schema(),
        ),
        ("test.schema.json", rivulet_spec::schema::test_schema()),
    ] {
        let path = format!(".schemas/{name}");
        match write_new(&dir.join(&path), &rivulet_spec::schema::to_pretty(value))? {
            Outcome::Written => {
                written += 1;
                schemas += 1;
            }
            Outcome::Kept => writeln!(
                out,
                "  kept   {} (refresh it with `rivulet schema --write {}`)",
                shown(dir, &path),
                arg(&dir.join(".schemas"))
            )?,
        }
    }
    if schemas > 0 {
        writeln!(
            out,
            "  wrote  {} (the JSON Schemas, for editors)",
            shown(dir, ".schemas/")
        )?;
    }
    if written == 0 {
        writeln!(
            out,
            "Nothing written: every file of the scaffold exists in {}.",
            dir.display()
        )?;
    }
    if kept.contains(&"connections.yaml") && !args.no_defaults {
        writeln!(
            out,
            "note: the default flows use a HubSpot connection named `hubspot`; the kept {} must define it",
            shown(dir, "connections.yaml")
        )?;
    }
    let d = arg(dir);
    let next: Vec<(String, &str)> = if args.no_defaults {
        vec![
            (
                "export HUBSPOT_TOKEN=…".into(),
                "a private app's or service key's access token",
            ),
            (
                format!("rivulet check {d}"),
                "its scopes, one record read, the rate limit; writes nothing",
            ),
            (
                format!("rivulet init {d}"),
                "later: adds the default flows beside connections.yaml",
            ),
        ]
    } else {
        vec![
            (
                format!("rivulet validate {d}"),
                "check the files (no network, no secrets)",
            ),
            (format!("rivulet test {d}"), "run the mapping tests"),
            (
                format!("rivulet run {d} --sandbox --once"),
                "run the flows once on the built-in sandbox",
            ),
            (
                "export HUBSPOT_TOKEN=…".into(),
                "then, for your portal: a private app's access token",
            ),
            (
                format!("rivulet check {d}"),
                "its scopes, properties and rate limit; writes nothing",
            ),
            (format!("rivulet run {d}"), "run the flows as a service"),
        ]
    };
    let width = next
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0);
    writeln!(out)?;
    writeln!(out, "Next:")?;
    for (command, what) in &next {
        writeln!(out, "  {command:<width$}   # {what}")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_has_its_test_and_every_yaml_names_its_schema() {
        for t in TEMPLATES {
            if let Some(stem) = t.path.strip_suffix(".yaml") {
                assert!(
                    t.text
                        .starts_with("# yaml-language-server: $schema=.schemas/"),
                    "{}",
                    t.path
                );
                if !stem.ends_with(".test") && stem != "connections" {
                    let test = format!("{stem}.test.yaml");
                    assert!(TEMPLATES.iter().any(|o| o.path == test), "{test}");
                    assert!(t.text.contains(&format!("\nname: {stem}\n")), "{}", t.path);
                }
            }
        }
        assert!(
            TEMPLATES
                .iter()
                .filter(|t| !t.default_mapping)
                .all(|t| t.path == "connections.yaml")
        );
    }

    #[test]
    fn folder_names_are_quoted_for_the_shell_when_needed() {
        assert_eq!(arg(Path::new("demo/flows")), "demo/flows");
        assert_eq!(arg(Path::new("my flows")), "'my flows'");
        assert_eq!(arg(Path::new("it's")), r"'it'\''s'");
    }
}
