//! `rivulet sandbox` (being written).

use std::process::ExitCode;

/// Arguments of `rivulet sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rivulet sandbox` is not available in this build yet")
}
