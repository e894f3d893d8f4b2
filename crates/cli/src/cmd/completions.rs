//! `rivulet completions SHELL` and `rivulet man`: shell completions and a man page, generated
//! from the same command definitions `--help` prints.

use clap::CommandFactory;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rivulet completions`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet completions bash > /etc/bash_completion.d/rivulet\n  rivulet completions zsh > \"${fpath[1]}/_rivulet\"\n\nExit codes: 0 printed, 2 usage error."
)]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `rivulet man`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet man | man -l -\n  rivulet man --dir /usr/local/share/man/man1\n\nExit codes: 0 written, 2 usage or I/O error."
)]
pub struct ManArgs {
    /// Write `rivulet.1` and one page per subcommand (`rivulet-run.1`, …) into this folder
    /// instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "rivulet", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(cmd, &dir)?;
            eprintln!("wrote man pages into {}", dir.display());
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(ExitCode::SUCCESS)
}
