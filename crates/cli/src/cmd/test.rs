//! `rivulet test` (being written).

use std::process::ExitCode;

/// Arguments of `rivulet test`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rivulet test` is not available in this build yet")
}
