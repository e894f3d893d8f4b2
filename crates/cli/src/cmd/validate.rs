//! `rivulet validate`: every problem in every file, for people and for CI.

use crate::render::{self, Format};
use rivulet_spec::validate::{Options, validate_paths};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rivulet validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet validate\n  rivulet validate flows/ --format github --deny-warnings   # in CI\n  rivulet validate flows/orders.yaml --format json\n\nExit codes: 0 valid, 1 errors (or warnings with --deny-warnings), 2 usage or I/O error."
)]
pub struct Args {
    /// Flow files or directories (searched recursively for *.yaml and *.yml; *.test.yaml are
    /// mapping tests and skipped).
    #[arg(default_value = "flows")]
    paths: Vec<PathBuf>,
    /// Output: `human` (with source lines), `json` (stable, versioned) or `github` (workflow
    /// annotations).
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Treat unset environment variables and missing secret files as errors.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        strict: args.strict,
        ..Options::default()
    };
    let validation = validate_paths(&args.paths, &options)?;
    let valid = validation.is_valid(args.deny_warnings);
    let mut stdout = std::io::stdout().lock();
    render::validation(&mut stdout, &validation, args.format, valid)?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
