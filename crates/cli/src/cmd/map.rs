//! `rivulet map` (being written).

use std::process::ExitCode;

/// Arguments of `rivulet map`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rivulet map` is not available in this build yet")
}
